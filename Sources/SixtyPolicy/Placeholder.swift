// Module SixtyPolicy.
