module EMFlow.Missingness
