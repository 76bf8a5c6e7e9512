from evidock.entry import main

main()
