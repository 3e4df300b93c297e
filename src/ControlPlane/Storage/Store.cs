using System.Diagnostics;
using Google.Protobuf;
using NodeAgent.ControlPlane.Etcd;
using NodeAgent.ControlPlane.Etcd.V3;

namespace NodeAgent.ControlPlane.Storage;

/// <summary>A stored object: its bytes (no resourceVersion inside; the etcd response's own buffer, not a copy) and its etcd mod revision.</summary>
public readonly record struct Item(string Key, ReadOnlyMemory<byte> Value, long Revision);

/// <summary>The outcome of a conditional write.</summary>
public enum WriteResult { Ok, Exists, Missing, Modified, ReservedKeyTaken }

/// <summary>
/// Object storage on etcd v3. Every write is one transaction guarded by a compare, so
/// concurrent writers never both win and a rejected write leaves nothing behind. A write may also
/// reserve or release extra keys (a Service's ClusterIP and NodePorts) in the same transaction.
/// Every etcd call is timed into <paramref name="metrics"/> when given.
/// </summary>
public sealed class Store(EtcdClient etcd, StorageMetrics? metrics = null)
{
    public EtcdClient Etcd => etcd;
    public StorageMetrics? Metrics => metrics;

    /// <summary>Awaits an etcd call started at <paramref name="started"/> and records it under the key's resource.</summary>
    private async Task<T> Timed<T>(StorageMetrics.Operation op, string key, long started, Task<T> call)
    {
        T result;
        try { result = await call.ConfigureAwait(false); }
        catch (Exception)
        {
            metrics?.Observe(op, key, started, failed: true);
            throw;
        }
        metrics?.Observe(op, key, started, failed: false);
        return result;
    }

    private static ByteString K(string key) => ByteString.CopyFromUtf8(key);

    public async Task<Item?> GetAsync(string key, CancellationToken ct)
    {
        var r = await Timed(StorageMetrics.Operation.Get, key, Stopwatch.GetTimestamp(), etcd.RangeAsync(new RangeRequest { Key = K(key) }, ct)).ConfigureAwait(false);
        if (r.Kvs.Count == 0) return null;
        var kv = r.Kvs[0];
        return new Item(key, kv.Value.Memory, kv.ModRevision);
    }

    /// <summary>
    /// A page of keys under <paramref name="prefix"/>, from <paramref name="startKey"/> (inclusive),
    /// at <paramref name="revision"/> (0 = newest). Returns the revision read and how many keys remain.
    /// </summary>
    public async Task<(List<Item> Items, long Revision, long Remaining)> ListAsync(
        string prefix, string? startKey, long limit, long revision, CancellationToken ct)
    {
        var req = new RangeRequest
        {
            Key = K(startKey ?? prefix),
            RangeEnd = EtcdClient.PrefixEnd(System.Text.Encoding.UTF8.GetBytes(prefix)),
            Limit = limit,
            Revision = revision,
        };
        var r = await Timed(StorageMetrics.Operation.List, prefix, Stopwatch.GetTimestamp(), etcd.RangeAsync(req, ct)).ConfigureAwait(false);
        var items = new List<Item>(r.Kvs.Count);
        foreach (var kv in r.Kvs) items.Add(new Item(kv.Key.ToStringUtf8(), kv.Value.Memory, kv.ModRevision));
        return (items, r.Header.Revision, Math.Max(0, r.Count - r.Kvs.Count));
    }

    public async Task<(WriteResult Result, long Revision, string? Taken)> CreateAsync(
        string key, byte[] value, IReadOnlyList<string>? reserve, CancellationToken ct)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(Absent(key));
        txn.Success.Add(Put(key, value));
        foreach (var r in reserve ?? [])
        {
            txn.Compare.Add(Absent(r));
            txn.Success.Add(Put(r, System.Text.Encoding.UTF8.GetBytes(key)));
        }
        return await RunAsync(StorageMetrics.Operation.Create, txn, key, reserve, WriteResult.Exists, ct).ConfigureAwait(false);
    }

    public async Task<(WriteResult Result, long Revision, string? Taken)> UpdateAsync(
        string key, byte[] value, long expected, IReadOnlyList<string>? reserve, IReadOnlyList<string>? release, CancellationToken ct)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = K(key), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = expected });
        txn.Success.Add(Put(key, value));
        foreach (var r in reserve ?? [])
        {
            txn.Compare.Add(Absent(r));
            txn.Success.Add(Put(r, System.Text.Encoding.UTF8.GetBytes(key)));
        }
        foreach (var r in release ?? []) txn.Success.Add(Delete(r));
        return await RunAsync(StorageMetrics.Operation.Update, txn, key, reserve, WriteResult.Modified, ct).ConfigureAwait(false);
    }

    public async Task<(WriteResult Result, long Revision)> DeleteAsync(string key, long expected, IReadOnlyList<string>? release, CancellationToken ct)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = K(key), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = expected });
        txn.Success.Add(Delete(key));
        foreach (var r in release ?? []) txn.Success.Add(Delete(r));
        var resp = await Timed(StorageMetrics.Operation.Delete, key, Stopwatch.GetTimestamp(), etcd.TxnAsync(txn, ct)).ConfigureAwait(false);
        return (resp.Succeeded ? WriteResult.Ok : WriteResult.Modified, resp.Header.Revision);
    }

    private async Task<(WriteResult, long, string?)> RunAsync(StorageMetrics.Operation op, TxnRequest txn, string key, IReadOnlyList<string>? reserve, WriteResult mainFailure, CancellationToken ct)
    {
        // On failure, read the guarded keys back to tell which compare failed.
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = K(key), KeysOnly = true } });
        foreach (var r in reserve ?? []) txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = K(r), KeysOnly = true } });
        var resp = await Timed(op, key, Stopwatch.GetTimestamp(), etcd.TxnAsync(txn, ct)).ConfigureAwait(false);
        if (resp.Succeeded) return (WriteResult.Ok, resp.Header.Revision, null);
        bool mainExists = resp.Responses[0].ResponseRange.Kvs.Count > 0;
        if (mainFailure == WriteResult.Exists && mainExists) return (WriteResult.Exists, resp.Header.Revision, null);
        if (mainFailure == WriteResult.Modified && !mainExists) return (WriteResult.Missing, resp.Header.Revision, null);
        for (int i = 0; i < (reserve?.Count ?? 0); i++)
            if (resp.Responses[i + 1].ResponseRange.Kvs.Count > 0) return (WriteResult.ReservedKeyTaken, resp.Header.Revision, reserve![i]);
        return (mainFailure, resp.Header.Revision, null);
    }

    private static Compare Absent(string key) =>
        new() { Key = K(key), Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 };

    // The value is wrapped, not copied: every caller hands over bytes it only reads afterwards (the
    // encoded object, also written back to the client), so the request may share them.
    private static RequestOp Put(string key, byte[] value) =>
        new() { RequestPut = new PutRequest { Key = K(key), Value = UnsafeByteOperations.UnsafeWrap(value) } };

    private static RequestOp Delete(string key) => new() { RequestDeleteRange = new DeleteRangeRequest { Key = K(key) } };
}
