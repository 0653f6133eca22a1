module EMFlow.Gaussian
