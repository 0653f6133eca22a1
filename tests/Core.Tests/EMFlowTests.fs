module EMFlow.Tests.EMFlowTests
