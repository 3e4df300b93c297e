namespace NodeAgent.Api.Validation;

/// <summary>
/// One problem with one field, rendered the way apimachinery's field.Error renders it, e.g.
/// <c>spec.containers[0].image: Required value</c> or
/// <c>spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"</c>.
/// </summary>
public sealed record FieldError(string Field, string Kind, string? BadValue, string? Detail)
{
    public static FieldError Required(string field, string? detail = null) => new(field, "Required value", null, detail);
    public static FieldError Invalid(string field, object? value, string detail) => new(field, "Invalid value", Quote(value), detail);
    public static FieldError Duplicate(string field, object? value) => new(field, "Duplicate value", Quote(value), null);
    public static FieldError NotFound(string field, object? value) => new(field, "Not found", Quote(value), null);
    public static FieldError Forbidden(string field, string detail) => new(field, "Forbidden", null, detail);
    public static FieldError NotSupported(string field, object? value, params string[] supported) =>
        new(field, "Unsupported value", Quote(value), "supported values: " + string.Join(", ", supported.Order(StringComparer.Ordinal).Select(s => $"\"{s}\"")));

    private static string? Quote(object? v) => v switch
    {
        null => "null",
        string s => $"\"{s}\"",
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => v.ToString(),
    };

    public override string ToString()
    {
        var s = $"{Field}: {Kind}";
        if (BadValue is not null && Kind != "Required value" && Kind != "Forbidden") s += $": {BadValue}";
        if (!string.IsNullOrEmpty(Detail)) s += $": {Detail}";
        return s;
    }
}
