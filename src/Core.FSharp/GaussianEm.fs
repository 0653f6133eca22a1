module EMFlow.GaussianEm
