module EMFlow.Tests.FlowTests
