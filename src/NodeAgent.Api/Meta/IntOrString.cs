using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace NodeAgent.Api.Meta;

/// <summary>intstr.IntOrString: a port given by number or by name.</summary>
[JsonConverter(typeof(IntOrStringConverter))]
public readonly record struct IntOrString
{
    public int? IntValue { get; }
    public string? StringValue { get; }
    public bool IsInt => IntValue.HasValue;

    public IntOrString(int value) { IntValue = value; StringValue = null; }
    public IntOrString(string value) { IntValue = null; StringValue = value; }

    public static implicit operator IntOrString(int v) => new(v);
    public static implicit operator IntOrString(string v) => new(v);

    public override string ToString() => IntValue?.ToString(CultureInfo.InvariantCulture) ?? StringValue ?? "";
}

public sealed class IntOrStringConverter : JsonConverter<IntOrString>
{
    public override IntOrString Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Number when reader.TryGetInt32(out int i) => new IntOrString(i),
            JsonTokenType.String => new IntOrString(reader.GetString()!),
            _ => throw new JsonException("expected an integer or a string"),
        };

    public override void Write(Utf8JsonWriter writer, IntOrString value, JsonSerializerOptions options)
    {
        if (value.IsInt) writer.WriteNumberValue(value.IntValue!.Value);
        else writer.WriteStringValue(value.StringValue);
    }
}
