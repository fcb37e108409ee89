from pywhisk.launcher import main

main()
