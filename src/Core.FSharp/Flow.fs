module EMFlow.Flow
