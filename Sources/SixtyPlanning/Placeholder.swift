// Module SixtyPlanning.
