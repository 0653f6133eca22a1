namespace EMFlow;

/// <summary>How <see cref="MixedImputer"/> treats a column: as a number, or as one of a finite set of categories.</summary>
public enum ColumnKind
{
    /// <summary>A real value; imputed as the inner imputer imputes it.</summary>
    Numeric,
    /// <summary>A category (each distinct observed value is one); always imputed as one of the categories observed at
    /// Fit. Text columns of a <see cref="Table"/> are categorical, and so are integer codes declared so.</summary>
    Categorical,
}
