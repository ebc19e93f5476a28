import ParamSnapCLI
InfoCommand.main()
