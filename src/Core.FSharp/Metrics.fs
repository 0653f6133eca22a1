module EMFlow.Metrics
