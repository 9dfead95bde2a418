import SixtyCLI

await SixtyCommand.run()
