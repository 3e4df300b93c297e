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

    // One buffer and writer per thread, reused: Encode runs on every create and update, and a
    // fresh writer growing a fresh buffer cost four times the stored bytes in garbage each time.
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>Serializes <paramref name="obj"/> for storage (the node is not modified).</summary>
    public static byte[] Encode(JsonObject obj)
    {
        var w = BeginEncode();
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
        return EndEncode(w);
    }

    /// <summary>
    /// The thread's writer, reset, for an encoder that writes an object in the stored form itself
    /// (kind, apiVersion, metadata first); <see cref="EndEncode"/> returns its bytes. Nothing may
    /// run on the same thread in between that encodes too.
    /// </summary>
    public static Utf8JsonWriter BeginEncode()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        var w = t_writer ??= new Utf8JsonWriter(buffer, Json.WriterOptions);
        w.Reset(buffer);
        return w;
    }

    public static byte[] EndEncode(Utf8JsonWriter w)
    {
        w.Flush();
        var buffer = t_buffer!;
        var result = buffer.WrittenSpan.ToArray();
        // A rare huge object must not pin its buffer to the thread for good.
        if (buffer.Capacity > 1 << 20) t_buffer = null;
        return result;
    }

    /// <summary>
    /// <paramref name="encoded"/> (an object from <see cref="Encode"/>, so never empty: it has metadata)
    /// with <paramref name="member"/> (<c>"name":value</c>, compact, as the writer writes it) added at its end.
    /// </summary>
    public static byte[] AppendMember(ReadOnlySpan<byte> encoded, ReadOnlySpan<byte> member)
    {
        int end = encoded.Length - 1; // the closing brace: the writer adds nothing after it
        var result = new byte[encoded.Length + 1 + member.Length];
        encoded[..end].CopyTo(result);
        result[end] = (byte)',';
        member.CopyTo(result.AsSpan(end + 1));
        result[^1] = (byte)'}';
        return result;
    }

    /// <summary>Writes the stored bytes with <c>metadata.resourceVersion</c> set to <paramref name="rv"/>.</summary>
    public static void WriteWithResourceVersion(ReadOnlySpan<byte> stored, long rv, IBufferWriter<byte> output)
    {
        Span<byte> insert = stackalloc byte[MaxInsert];
        int split = Insertion(stored, rv, insert, out int n);
        output.Write(stored[..split]);
        output.Write(insert[..n]);
        output.Write(stored[split..]);
    }

    /// <summary>The stored bytes with <c>metadata.resourceVersion</c> set, in an array of exactly their size.</summary>
    public static byte[] WithResourceVersion(ReadOnlySpan<byte> stored, long rv)
    {
        Span<byte> insert = stackalloc byte[MaxInsert];
        int split = Insertion(stored, rv, insert, out int n);
        var result = new byte[stored.Length + n];
        stored[..split].CopyTo(result);
        insert[..n].CopyTo(result.AsSpan(split));
        stored[split..].CopyTo(result.AsSpan(split + n));
        return result;
    }

    private const int MaxInsert = 64; // "resourceVersion":"<19 digits>",

    /// <summary>Where the resourceVersion member goes (just inside the top-level metadata) and its bytes; no member for bytes without metadata.</summary>
    private static int Insertion(ReadOnlySpan<byte> stored, long rv, Span<byte> insert, out int n)
    {
        n = 0;
        int at = stored.IndexOf(MetadataOpen);
        if (at < 0) return stored.Length;
        int split = at + MetadataOpen.Length;
        "\"resourceVersion\":\""u8.CopyTo(insert);
        n += 19;
        Utf8Formatter.TryFormat(rv, insert[n..], out int digits);
        n += digits;
        insert[n++] = (byte)'"';
        if (split < stored.Length && stored[split] != (byte)'}') insert[n++] = (byte)',';
        return split;
    }

    /// <summary>Parses stored bytes into a node with its resourceVersion set.</summary>
    public static JsonObject Decode(ReadOnlySpan<byte> stored, long rv)
    {
        var o = Json.ParseObject(stored);
        o.Meta()["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return o;
    }
}
