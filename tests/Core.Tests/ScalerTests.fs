module EMFlow.Tests.ScalerTests
