module EMFlow.EMFlow
