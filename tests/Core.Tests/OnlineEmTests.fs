module EMFlow.Tests.OnlineEmTests
