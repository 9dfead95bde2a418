import SixtyCLI
await SixtyCommand.main()
