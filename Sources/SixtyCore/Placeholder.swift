// Module SixtyCore.
