import ParamSnapCLI
PsnapCommand.main()
