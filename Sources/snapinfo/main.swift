import ParamSnapCLI
SnapinfoCommand.main()
