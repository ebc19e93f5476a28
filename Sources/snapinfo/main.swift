import ParamSnapCLICore
SnapinfoCommand.main()
