// loop: spins forever (the twin of actions/src/loop.c) -- ends in the action's time limit.
function main(args) {
  console.log("loop: spinning forever");
  for (;;) {
    // Nothing: the point is never to yield.
  }
}
