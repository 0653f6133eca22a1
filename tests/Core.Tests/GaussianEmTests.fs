module EMFlow.Tests.GaussianEmTests
