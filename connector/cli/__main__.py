"""`python -m connector.cli`: the `yorisoi` command (the fault and kill tests start it so)."""
from connector.cli import main

if __name__ == "__main__":
    main()
