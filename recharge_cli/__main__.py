from recharge_cli.app import main

main()
