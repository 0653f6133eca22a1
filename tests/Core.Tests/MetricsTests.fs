module EMFlow.Tests.MetricsTests
