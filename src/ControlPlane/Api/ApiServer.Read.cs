using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using NodeAgent.ControlPlane.Etcd;
using NodeAgent.ControlPlane.Registry;
using NodeAgent.ControlPlane.Storage;
using NodeAgent.ControlPlane.Watch;

namespace NodeAgent.ControlPlane.Api;

/// <summary>get, list (selectors, limit/continue, resourceVersion semantics), watch.</summary>
public sealed partial class ApiServer
{
    private async Task GetAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        var item = await _store.GetAsync(info.Key(req.Namespace, req.Name!), ctx.RequestAborted).ConfigureAwait(false)
                   ?? throw ApiException.NotFound(info.Ref, req.Name!);
        if (req.Subresource == "scale")
        {
            var obj = ObjectCodec.Decode(item.Value.Span, item.Revision);
            await WriteJsonAsync(ctx, 200, w => ToScale(obj).WriteTo(w)).ConfigureAwait(false);
            return;
        }
        if (WantsTable(ctx))
        {
            await WriteObjectAsync(ctx, 200, info, ObjectCodec.Decode(item.Value.Span, item.Revision)).ConfigureAwait(false);
            return;
        }
        var buffer = new ArrayBufferWriter<byte>(item.Value.Length + 64);
        ObjectCodec.WriteWithResourceVersion(item.Value.Span, item.Revision, buffer);
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).ConfigureAwait(false);
    }

    private static JsonObject ToScale(JsonObject obj)
    {
        var spec = obj.ObjOrNull("spec");
        string selector = "";
        try { selector = LabelSelector.FromObject(spec.ObjOrNull("selector")).ToString(); } catch (ApiException) { }
        return new JsonObject
        {
            ["kind"] = "Scale",
            ["apiVersion"] = "autoscaling/v1",
            ["metadata"] = new JsonObject
            {
                ["name"] = obj.Meta().Str("name"), ["namespace"] = obj.Meta().Str("namespace"), ["uid"] = obj.Meta().Str("uid"),
                ["resourceVersion"] = obj.Meta().Str("resourceVersion"), ["creationTimestamp"] = obj.Meta().Str("creationTimestamp"),
            },
            ["spec"] = new JsonObject { ["replicas"] = spec.Long("replicas") ?? 0 },
            ["status"] = new JsonObject { ["replicas"] = obj.ObjOrNull("status").Long("replicas") ?? 0, ["selector"] = selector },
        };
    }

    // ---- list ---------------------------------------------------------------------------------

    private sealed record ContinueToken(long Rv, string Start);

    private static string EncodeContinue(long rv, string startKey) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":{JsonSerializer.Serialize(startKey, Storage.StorageJsonContext.Default.String)}}}"));

    private static ContinueToken DecodeContinue(string token, string prefix)
    {
        try
        {
            var o = Json.ParseObject(Convert.FromBase64String(token));
            if (o.Str("v") != "meta.k8s.io/v1" || o.Long("rv") is not { } rv || o.Str("start") is not { } start)
                throw new FormatException();
            if (!start.StartsWith(prefix, StringComparison.Ordinal)) throw new FormatException();
            return new ContinueToken(rv, start);
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            throw ApiException.BadRequest("continue key is not valid: the continue token is malformed");
        }
    }

    private static long ParseLong(HttpContext ctx, string name, long dflt = 0)
    {
        var v = ctx.Request.Query[name].ToString();
        if (v.Length == 0) return dflt;
        if (!long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long l))
            throw ApiException.BadRequest($"invalid {name} value \"{v}\": must be a non-negative integer");
        return l;
    }

    private static long ParseResourceVersion(string v)
    {
        if (!long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long rv))
            throw new ApiException(400, "BadRequest", $"invalid resource version \"{v}\"");
        return rv;
    }

    private async Task ListAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        var q = ctx.Request.Query;
        var labels = LabelSelector.Parse(q["labelSelector"]);
        var fields = FieldSelector.Parse(q["fieldSelector"], info);
        long limit = ParseLong(ctx, "limit");
        string prefix = info.Prefix(req.Namespace);
        string? startKey = null;
        long revision = 0;
        if (q["continue"] is { Count: > 0 } cont && cont[0] is { Length: > 0 } token)
        {
            var c = DecodeContinue(token, prefix);
            revision = c.Rv;
            startKey = c.Start;
        }
        else if (q["resourceVersion"].ToString() is { Length: > 0 } rvText && rvText != "0")
        {
            long rv = ParseResourceVersion(rvText);
            if (q["resourceVersionMatch"].ToString() is { Length: > 0 } match && match is not ("Exact" or "NotOlderThan"))
                throw ApiException.Invalid("ListOptions", "meta.k8s.io", "", [NodeAgent.Api.Validation.FieldError.NotSupported("resourceVersionMatch", match, "Exact", "NotOlderThan")]);
            if (q["resourceVersionMatch"] == "Exact") revision = rv;
        }
        else if (q["resourceVersionMatch"].ToString() is { Length: > 0 } m && m != "NotOlderThan")
        {
            throw ApiException.BadRequest($"resourceVersionMatch \"{m}\" is forbidden unless resourceVersion is provided");
        }

        ParseLong(ctx, "timeoutSeconds"); // a list ignores it, but like upstream refuses one that does not parse
        bool filtered = !labels.IsEmpty || !fields.IsEmpty;
        if (limit == 0 && !WantsTable(ctx))
        {
            await StreamListAsync(ctx, info, prefix, startKey, revision, filtered ? (labels, fields) : null, q["continue"].Count > 0).ConfigureAwait(false);
            return;
        }
        var items = new List<Item>();
        long listRev;
        long remaining = 0;
        string? nextKey = null;
        try
        {
            // Unfiltered: one range with the client's limit. Filtered: pages until enough match.
            long page = limit == 0 ? 0 : filtered ? Math.Max(limit, 500) : limit + 1;
            while (true)
            {
                var (got, rev, rem) = await _store.ListAsync(prefix, startKey, page, revision, ctx.RequestAborted).ConfigureAwait(false);
                listRev = revision != 0 ? revision : rev;
                revision = listRev;
                int used = 0;
                foreach (var it in got)
                {
                    if (limit > 0 && items.Count == limit) { nextKey = it.Key; break; }
                    used++;
                    if (filtered && !new ObjectAttrs(info, it.Value.Span).Matches(labels, fields)) continue;
                    items.Add(it);
                }
                if (nextKey is not null)
                {
                    if (!filtered) remaining = rem + (got.Count - used);
                    break;
                }
                if (page == 0 || rem == 0) break;
                startKey = got[^1].Key + "\0";
            }
        }
        catch (EtcdCompactedException)
        {
            throw ListTooOld(q["continue"].Count > 0, revision);
        }
        string? cont2 = nextKey is null ? null : EncodeContinue(listRev, nextKey);
        void ListMeta(Utf8JsonWriter w)
        {
            w.WriteString("resourceVersion", listRev.ToString(CultureInfo.InvariantCulture));
            if (cont2 is not null) w.WriteString("continue", cont2);
            if (cont2 is not null && !filtered && remaining > 0) w.WriteNumber("remainingItemCount", remaining);
        }
        if (WantsTable(ctx))
        {
            await WriteJsonAsync(ctx, 200, w => WriteTable(w, info, items.Select(i => ObjectCodec.Decode(i.Value.Span, i.Revision)), ListMeta,
                ctx.Request.Query["includeObject"].ToString()), TableContentType).ConfigureAwait(false);
            return;
        }
        await WriteListAsync(ctx, info, items, ListMeta).ConfigureAwait(false);
    }

    private const int ListPage = 500;

    /// <summary>
    /// A list without a limit, read from etcd in pages of <see cref="ListPage"/> at one revision
    /// (the first page's, or the one asked for) and written as each page arrives. One range of
    /// 10,000 pods held ~45 MB of response and parsed objects alive for the whole answer, long
    /// enough to be promoted, and the server paused 10-25 ms collecting them seconds later; a page
    /// dies young. The items are the same snapshot as one range would give.
    /// </summary>
    private async Task StreamListAsync(HttpContext ctx, ResourceInfo info, string prefix, string? startKey, long revision,
        (LabelSelector Labels, FieldSelector Fields)? filter, bool continued)
    {
        List<Item> got;
        long rev, remaining;
        try
        {
            (got, rev, remaining) = await _store.ListAsync(prefix, startKey, ListPage, revision, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (EtcdCompactedException)
        {
            throw ListTooOld(continued, revision);
        }
        long listRev = revision != 0 ? revision : rev;
        var output = ctx.Response.BodyWriter;
        WriteListHead(ctx, info, w => w.WriteString("resourceVersion", listRev.ToString(CultureInfo.InvariantCulture)));
        Func<Item, bool>? keep = filter is { } f ? it => new ObjectAttrs(info, it.Value.Span).Matches(f.Labels, f.Fields) : null;
        bool first = await WriteItemsAsync(output, got, keep, true, ctx.RequestAborted).ConfigureAwait(false);
        try
        {
            await foreach (var page in NextPagesAsync(prefix, got, remaining, listRev, ctx.RequestAborted).ConfigureAwait(false))
                first = await WriteItemsAsync(output, page, keep, first, ctx.RequestAborted).ConfigureAwait(false);
        }
        catch (EtcdCompactedException)
        {
            // The status line is gone already: cut the response off so the client sees a failed
            // list, never a short one (it relists, as on any broken watch or list).
            ctx.Abort();
            return;
        }
        output.Write("]}\n"u8);
        await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// The pages of <see cref="ListPage"/> keys under <paramref name="prefix"/> that follow <paramref name="page"/>
    /// (which had <paramref name="remaining"/> keys after it), all at <paramref name="revision"/>. A
    /// compaction of that revision on the way throws <see cref="EtcdCompactedException"/>.
    /// </summary>
    private async IAsyncEnumerable<List<Item>> NextPagesAsync(string prefix, List<Item> page, long remaining, long revision,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        while (remaining > 0 && page.Count > 0)
        {
            (page, _, remaining) = await _store.ListAsync(prefix, page[^1].Key + "\0", ListPage, revision, ct).ConfigureAwait(false);
            yield return page;
        }
    }

    /// <summary>The status, content type and the list's opening up to its items array.</summary>
    private static void WriteListHead(HttpContext ctx, ResourceInfo info, Action<Utf8JsonWriter> listMeta)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        var head = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(head, Json.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("kind", info.ListKind);
            w.WriteString("apiVersion", info.ApiVersion);
            w.WriteStartObject("metadata");
            listMeta(w);
            w.WriteEndObject();
            w.WritePropertyName("items");
            w.WriteStartArray();
            w.Flush();
        }
        ctx.Response.BodyWriter.Write(head.WrittenSpan);
    }

    /// <summary>Streams a list: the header, then each stored item with its resourceVersion spliced in.</summary>
    private static async Task WriteListAsync(HttpContext ctx, ResourceInfo info, List<Item> items, Action<Utf8JsonWriter> listMeta)
    {
        var output = ctx.Response.BodyWriter;
        WriteListHead(ctx, info, listMeta);
        await WriteItemsAsync(output, items, null, true, ctx.RequestAborted).ConfigureAwait(false);
        output.Write("]}\n"u8);
        await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes the items <paramref name="keep"/> accepts (all when null), each with its resourceVersion
    /// spliced in, flushing every 64 KiB. <paramref name="first"/> says whether nothing precedes them in
    /// the array; returns it for the next batch.
    /// </summary>
    private static async Task<bool> WriteItemsAsync(PipeWriter output, List<Item> items, Func<Item, bool>? keep, bool first, CancellationToken ct)
    {
        foreach (var it in items)
        {
            if (keep is not null && !keep(it)) continue;
            if (!first) output.Write(","u8);
            first = false;
            ObjectCodec.WriteWithResourceVersion(it.Value.Span, it.Revision, output);
            if (output.UnflushedBytes > 64 * 1024) await output.FlushAsync(ct).ConfigureAwait(false);
        }
        return first;
    }

    /// <summary>410 Expired for a list whose revision (from resourceVersion or a continue token) was compacted away.</summary>
    private static ApiException ListTooOld(bool continued, long revision) => continued
        ? ApiException.Gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
        : ApiException.Gone($"too old resource version: {revision}");

    // ---- watch --------------------------------------------------------------------------------

    private async Task WatchAsync(HttpContext ctx, RequestInfo req)
    {
        var info = req.Info;
        var q = ctx.Request.Query;
        var labels = LabelSelector.Parse(q["labelSelector"]);
        var fields = FieldSelector.Parse(q["fieldSelector"], info);
        if (req.Name is not null) fields = FieldSelector.Parse("metadata.name=" + req.Name + (q["fieldSelector"].ToString() is { Length: > 0 } f ? "," + f : ""), info);
        bool bookmarks = q["allowWatchBookmarks"] == "true";
        bool initialEvents = q["sendInitialEvents"] == "true";
        bool table = WantsTable(ctx);
        string include = q["includeObject"].ToString();
        long timeoutSeconds = ParseLong(ctx, "timeoutSeconds", -1);
        var timeout = timeoutSeconds >= 0 ? TimeSpan.FromSeconds(timeoutSeconds)
            : _opts.MinRequestTimeout * (1 + Random.Shared.NextDouble());
        string rvText = q["resourceVersion"].ToString();
        string prefix = info.Prefix(req.Namespace);
        var cache = _caches[info];

        // "Start at most recent": the current state as ADDED events, then changes after it. The
        // state is read in pages at the first page's revision, as an unlimited list is, and
        // written as each page arrives.
        List<Item>? initial = null;
        long from, remaining = 0;
        if (rvText is "" or "0" || initialEvents)
            (initial, from, remaining) = await _store.ListAsync(prefix, null, ListPage, 0, ctx.RequestAborted).ConfigureAwait(false);
        else from = ParseResourceVersion(rvText);

        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = table ? TableContentType : "application/json";
        ctx.Response.Headers.CacheControl = "no-cache, private";
        var output = ctx.Response.BodyWriter;
        var watcher = cache.Subscribe(from, prefix, labels, fields, bookmarks);
        if (watcher is null)
        {
            WriteErrorEvent(output, ApiException.Gone($"too old resource version: {from} ({cache.Floor})"));
            await output.FlushAsync(ctx.RequestAborted).ConfigureAwait(false);
            return;
        }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        cts.CancelAfter(timeout);
        var ct = cts.Token;
        bool columnsSent = false;
        try
        {
            if (initial is not null)
            {
                columnsSent = await WriteAddedAsync(output, info, initial, labels, fields, table, include, columnsSent, ct).ConfigureAwait(false);
                try
                {
                    await foreach (var page in NextPagesAsync(prefix, initial, remaining, from, ct).ConfigureAwait(false))
                        columnsSent = await WriteAddedAsync(output, info, page, labels, fields, table, include, columnsSent, ct).ConfigureAwait(false);
                }
                catch (EtcdCompactedException)
                {
                    // Events already sent stand (a watch is not a snapshot); the client starts over.
                    WriteErrorEvent(output, ApiException.Gone($"too old resource version: {from}"));
                    await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    return;
                }
                if (initialEvents && bookmarks) WriteBookmark(output, info, from, initialEventsEnd: true);
            }
            await output.FlushAsync(ct).ConfigureAwait(false);
            var reader = watcher.Reader;
            while (await reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (reader.TryRead(out var item))
                {
                    if (item.Event is { } e)
                    {
                        bool now = e.Attrs.Matches(labels, fields);
                        bool before = e.PrevAttrs?.Matches(labels, fields) ?? !e.Created;
                        if (e.Deleted && !now || !e.Deleted && !now && !before) continue;
                        string type = e.Deleted || !now ? "DELETED" : before && !e.Created ? "MODIFIED" : "ADDED";
                        WriteEvent(output, type, info, e.Object, table, include, ref columnsSent);
                    }
                    else WriteBookmark(output, info, item.Bookmark, initialEventsEnd: false);
                }
                await output.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (SlowWatcherException)
        {
        }
        catch (EtcdCompactedException)
        {
            WriteErrorEvent(output, ApiException.Gone("too old resource version: the watch cache was reset"));
            await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            cache.Unsubscribe(watcher);
        }
    }

    /// <summary>ADDED events for the <paramref name="items"/> the selectors keep, flushing every 64 KiB; returns whether a table's columns have been sent.</summary>
    private async Task<bool> WriteAddedAsync(PipeWriter output, ResourceInfo info, List<Item> items, LabelSelector labels, FieldSelector fields,
        bool table, string include, bool columnsSent, CancellationToken ct)
    {
        foreach (var it in items)
        {
            if (!new ObjectAttrs(info, it.Value.Span).Matches(labels, fields)) continue;
            WriteEvent(output, "ADDED", info, ObjectCodec.WithResourceVersion(it.Value.Span, it.Revision), table, include, ref columnsSent);
            if (output.UnflushedBytes > 64 * 1024) await output.FlushAsync(ct).ConfigureAwait(false);
        }
        return columnsSent;
    }

    private void WriteEvent(IBufferWriter<byte> output, string type, ResourceInfo info, byte[] obj, bool table, string include, ref bool columnsSent)
    {
        if (table)
        {
            bool cols = !columnsSent;
            columnsSent = true;
            var o = Json.ParseObject(obj);
            var b = new ArrayBufferWriter<byte>(1024);
            using (var w = new Utf8JsonWriter(b, Json.WriterOptions))
            {
                w.WriteStartObject();
                w.WriteString("type", type);
                w.WritePropertyName("object");
                WriteTable(w, info, [o], mw => mw.WriteString("resourceVersion", o.Meta().Str("resourceVersion")), include, cols);
                w.WriteEndObject();
            }
            output.Write(b.WrittenSpan);
            output.Write("\n"u8);
            Metrics.RecordWatchEvent(info.Group, info.Version, info.Resource, b.WrittenCount + 1);
            return;
        }
        Metrics.RecordWatchEvent(info.Group, info.Version, info.Resource, obj.Length + type.Length + 22);
        output.Write("{\"type\":\""u8);
        output.Write(Encoding.ASCII.GetBytes(type));
        output.Write("\",\"object\":"u8);
        output.Write(obj);
        output.Write("}\n"u8);
    }

    private static void WriteBookmark(IBufferWriter<byte> output, ResourceInfo info, long rv, bool initialEventsEnd)
    {
        using var w = new Utf8JsonWriter(output, Json.WriterOptions);
        w.WriteStartObject();
        w.WriteString("type", "BOOKMARK");
        w.WriteStartObject("object");
        w.WriteString("kind", info.Kind);
        w.WriteString("apiVersion", info.ApiVersion);
        w.WriteStartObject("metadata");
        w.WriteString("resourceVersion", rv.ToString(CultureInfo.InvariantCulture));
        if (initialEventsEnd)
        {
            w.WriteStartObject("annotations");
            w.WriteString("k8s.io/initial-events-end", "true");
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
        w.Flush();
        output.Write("\n"u8);
    }

    private static void WriteErrorEvent(IBufferWriter<byte> output, ApiException e)
    {
        using (var w = new Utf8JsonWriter(output, Json.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("type", "ERROR");
            w.WritePropertyName("object");
            e.WriteStatus(w);
            w.WriteEndObject();
        }
        output.Write("\n"u8);
    }
}
