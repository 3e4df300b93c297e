using System.Collections.Concurrent;
using NodeAgent.Api.Core;

namespace NodeAgent.Status;

/// <summary>
/// The latest Pod (spec and computed status) per UID. Each pod worker writes only its own entry;
/// readers (the /pods endpoint, later the API status manager) take snapshots. Values are never
/// mutated after they are stored.
/// </summary>
public sealed class PodStatusStore
{
    private readonly ConcurrentDictionary<string, Pod> _pods = new(StringComparer.Ordinal);

    /// <summary>Raised after a pod's stored status changed (by UID). Handlers must be quick.</summary>
    public event Action<string>? Changed;

    public void Set(string uid, Pod pod)
    {
        _pods[uid] = pod;
        Changed?.Invoke(uid);
    }

    public void Remove(string uid)
    {
        if (_pods.TryRemove(uid, out _)) Changed?.Invoke(uid);
    }

    public Pod? Get(string uid) => _pods.TryGetValue(uid, out var p) ? p : null;

    public int Count => _pods.Count;

    /// <summary>The pod with this namespace and name (the newest, by creation, if a replacement is starting), or null.</summary>
    public Pod? Find(string ns, string name)
    {
        Pod? found = null;
        foreach (var p in _pods.Values)
            if (p.Metadata.Name == name && p.Metadata.Namespace == ns
                && (found is null || Nullable.Compare(p.Metadata.CreationTimestamp, found.Metadata.CreationTimestamp) > 0))
                found = p;
        return found;
    }

    public PodList Snapshot()
    {
        var items = new List<Pod>(_pods.Count);
        foreach (var p in _pods.Values) items.Add(p);
        items.Sort(static (a, b) =>
        {
            int c = string.CompareOrdinal(a.Metadata.Namespace, b.Metadata.Namespace);
            return c != 0 ? c : string.CompareOrdinal(a.Metadata.Name, b.Metadata.Name);
        });
        return new PodList { Items = items };
    }
}
