def main(args):
    name = args.get("name", "stranger")
    return {"greeting": f"Hello, {name}!"}
