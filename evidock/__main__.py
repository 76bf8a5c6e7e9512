from evidock.cli import main

main()
