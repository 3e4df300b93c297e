using System.Runtime.InteropServices;
using System.Text;

namespace NodeAgent.Cri;

/// <summary>One sandbox or container as the PLEG sees it: its ID, its pod's UID (label), its CRI state.</summary>
public readonly record struct RelistEntry(string Id, string PodUid, int State);

/// <summary>
/// Reads the two list responses the PLEG takes every second (ListPodSandboxResponse,
/// ListContainersResponse) straight from their protobuf bytes, keeping only what a relist
/// compares: the ID, the pod UID label and the state. Decoded as messages, a relist of 50 pods
/// built ~100 objects with two map fields each (Google.Protobuf keeps a map as a dictionary plus
/// a linked list) and a new string for every ID, label and annotation, every second. Here the
/// strings come from a table that keeps those of the previous relist: when nothing changed, a
/// relist allocates no strings at all. Entries without the pod UID label are skipped, as before.
/// Wire facts (runtime.v1): ListPodSandboxResponse.items = 1, PodSandbox.id = 1, state = 3,
/// labels = 5; ListContainersResponse.containers = 1, Container.id = 1, state = 6, labels = 8;
/// map entries: key = 1, value = 2. Not thread-safe: one owner (the PLEG's loop).
/// </summary>
public sealed class RelistDecoder
{
    private static ReadOnlySpan<byte> PodUidLabel => "io.kubernetes.pod.uid"u8;

    // Hash of the UTF-8 bytes -> the string and the relist that last used it. A collision with a
    // different string in use in the same relist is not cached (a new string, as without a table).
    private readonly Dictionary<int, (string Value, int Seen)> _strings = [];
    private int _relist;

    /// <summary>Decodes a ListPodSandboxResponse into <paramref name="into"/> (appended; states are offset by 100 as the PLEG keys them).</summary>
    public void DecodeSandboxes(ReadOnlySpan<byte> message, List<RelistEntry> into) => Decode(message, into, idField: 1, stateField: 3, labelsField: 5, stateOffset: 100);

    /// <summary>Decodes a ListContainersResponse into <paramref name="into"/> (appended).</summary>
    public void DecodeContainers(ReadOnlySpan<byte> message, List<RelistEntry> into) => Decode(message, into, idField: 1, stateField: 6, labelsField: 8, stateOffset: 0);

    /// <summary>Ends a relist: strings not seen in it are let go.</summary>
    public void EndRelist()
    {
        foreach (var (hash, entry) in _strings)
            if (entry.Seen != _relist) _strings.Remove(hash);
        _relist++;
    }

    /// <summary>Strings held for the next relist (for tests).</summary>
    public int Held => _strings.Count;

    private void Decode(ReadOnlySpan<byte> message, List<RelistEntry> into, int idField, int stateField, int labelsField, int stateOffset)
    {
        var outer = new WireReader(message);
        while (outer.Next(out int field, out int wire))
        {
            if (field != 1 || wire != WireReader.LengthDelimited) { outer.Skip(wire); continue; }
            var item = new WireReader(outer.Bytes());
            ReadOnlySpan<byte> id = default, uid = default;
            bool hasUid = false;
            int state = 0;
            while (item.Next(out int f, out int w))
            {
                if (f == idField && w == WireReader.LengthDelimited) id = item.Bytes();
                else if (f == stateField && w == WireReader.VarintType) state = (int)item.Varint();
                else if (f == labelsField && w == WireReader.LengthDelimited)
                {
                    var entry = new WireReader(item.Bytes());
                    ReadOnlySpan<byte> key = default, value = default;
                    while (entry.Next(out int ef, out int ew))
                    {
                        if (ef == 1 && ew == WireReader.LengthDelimited) key = entry.Bytes();
                        else if (ef == 2 && ew == WireReader.LengthDelimited) value = entry.Bytes();
                        else entry.Skip(ew);
                    }
                    if (key.SequenceEqual(PodUidLabel)) { uid = value; hasUid = true; }
                }
                else item.Skip(w);
            }
            if (hasUid) into.Add(new RelistEntry(Intern(id), Intern(uid), stateOffset + state));
        }
    }

    /// <summary>The string for these UTF-8 bytes: the one already held if equal, else a new one.</summary>
    private string Intern(ReadOnlySpan<byte> utf8)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_strings, Hash(utf8), out bool exists);
        if (exists && Equal(slot.Value, utf8))
        {
            slot.Seen = _relist;
            return slot.Value;
        }
        string s = Encoding.UTF8.GetString(utf8);
        if (!exists || slot.Seen != _relist) slot = (s, _relist);
        return s;
    }

    private static bool Equal(string s, ReadOnlySpan<byte> utf8)
    {
        if (s.Length > utf8.Length) return false;
        if (Ascii.IsValid(utf8)) return s.Length == utf8.Length && Ascii.Equals(utf8, s);
        return Encoding.UTF8.GetString(utf8) == s; // rare: IDs, UIDs and label values are ASCII
    }

    private static int Hash(ReadOnlySpan<byte> utf8) => (int)System.IO.Hashing.XxHash32.HashToUInt32(utf8);

    /// <summary>The protobuf wire format, as far as a list response needs it.</summary>
    private ref struct WireReader(ReadOnlySpan<byte> data)
    {
        public const int VarintType = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public bool Next(out int field, out int wire)
        {
            if (_pos >= _data.Length) { field = wire = 0; return false; }
            ulong tag = Varint();
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length) throw new InvalidDataException("truncated varint in a CRI list response");
                byte b = _data[_pos++];
                v |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return v;
            }
            throw new InvalidDataException("malformed varint in a CRI list response");
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong len = Varint();
            if (len > (ulong)(_data.Length - _pos)) throw new InvalidDataException("truncated field in a CRI list response");
            var s = _data.Slice(_pos, (int)len);
            _pos += (int)len;
            return s;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case VarintType: Varint(); break;
                case Fixed64: Advance(8); break;
                case LengthDelimited: Bytes(); break;
                case Fixed32: Advance(4); break;
                default: throw new InvalidDataException($"unsupported wire type {wire} in a CRI list response");
            }
        }

        private void Advance(int n)
        {
            if (_pos + n > _data.Length) throw new InvalidDataException("truncated field in a CRI list response");
            _pos += n;
        }
    }
}
