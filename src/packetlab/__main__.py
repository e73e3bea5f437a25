from packetlab.cli.main import main

main()
