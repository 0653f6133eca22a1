module EMFlow.Tests.GaussianTests
