// Module SixtyKeys.
