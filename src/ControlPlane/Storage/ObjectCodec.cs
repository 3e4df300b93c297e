using System.Buffers;
using System.Buffers.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NodeAgent.ControlPlane.Storage;

/// <summary>
/// How objects sit in etcd: JSON with <c>kind</c>, <c>apiVersion</c> and <c>metadata</c> first and no
/// <c>metadata.resourceVersion</c> (the etcd mod revision is the resourceVersion, as upstream). Because
/// metadata always comes right after two string members, the first raw <c>"metadata":{</c> in the bytes
/// is the top-level one (inside a JSON string the quotes would be escaped), so reads splice the
/// resourceVersion in without parsing the object: lists and watches copy bytes, nothing more.
/// </summary>
public static class ObjectCodec
{
    private static ReadOnlySpan<byte> MetadataOpen => "\"metadata\":{"u8;

    /// <summary>Serializes <paramref name="obj"/> for storage (the node is not modified).</summary>
    public static byte[] Encode(JsonObject obj)
    {
        var buffer = new ArrayBufferWriter<byte>(2048);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (obj["kind"] is { } kind) { w.WritePropertyName("kind"); kind.WriteTo(w); }
            if (obj["apiVersion"] is { } av) { w.WritePropertyName("apiVersion"); av.WriteTo(w); }
            w.WritePropertyName("metadata");
            w.WriteStartObject();
            if (obj["metadata"] is JsonObject meta)
                foreach (var (k, v) in meta)
                {
                    if (k == "resourceVersion") continue;
                    w.WritePropertyName(k);
                    if (v is null) w.WriteNullValue(); else v.WriteTo(w);
                }
            w.WriteEndObject();
            foreach (var (k, v) in obj)
            {
                if (k is "kind" or "apiVersion" or "metadata") continue;
                w.WritePropertyName(k);
                if (v is null) w.WriteNullValue(); else v.WriteTo(w);
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes the stored bytes with <c>metadata.resourceVersion</c> set to <paramref name="rv"/>.</summary>
    public static void WriteWithResourceVersion(ReadOnlySpan<byte> stored, long rv, IBufferWriter<byte> output)
    {
        int at = stored.IndexOf(MetadataOpen);
        if (at < 0)
        {
            output.Write(stored);
            return;
        }
        int split = at + MetadataOpen.Length;
        output.Write(stored[..split]);
        var span = output.GetSpan(64);
        int n = 0;
        "\"resourceVersion\":\""u8.CopyTo(span);
        n += 19;
        Utf8Formatter.TryFormat(rv, span[n..], out int digits);
        n += digits;
        span[n++] = (byte)'"';
        if (split < stored.Length && stored[split] != (byte)'}') span[n++] = (byte)',';
        output.Advance(n);
        output.Write(stored[split..]);
    }

    public static byte[] WithResourceVersion(ReadOnlySpan<byte> stored, long rv)
    {
        var b = new ArrayBufferWriter<byte>(stored.Length + 40);
        WriteWithResourceVersion(stored, rv, b);
        return b.WrittenSpan.ToArray();
    }

    /// <summary>Parses stored bytes into a node with its resourceVersion set.</summary>
    public static JsonObject Decode(ReadOnlySpan<byte> stored, long rv)
    {
        var o = Json.ParseObject(stored);
        o.Meta()["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return o;
    }
}
