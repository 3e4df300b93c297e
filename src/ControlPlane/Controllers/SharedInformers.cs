using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>
/// One informer per path (with its query) for every controller of a leadership term, as upstream's
/// shared informer factory: one list+watch, one decode and one cache per resource however many
/// controllers read it (six of them watch pods). Each subscriber is told every change, in order, on
/// the informer's own loop after its cache has it; the objects are shared, so subscribers only
/// read them (JsonObject allows concurrent reads; a controller that changes one clones it first).
/// Subscribe before <see cref="RunAsync"/>: a subscriber joining later would miss the first list.
/// </summary>
public sealed class SharedInformers(ApiClient api, ILogger log, TimeProvider time)
{
    private readonly Dictionary<string, (Informer Informer, List<Action<InformerChange, Informer>> Subscribers)> _informers =
        new(StringComparer.Ordinal);
    private bool _started;

    /// <summary>Calls <paramref name="onChange"/> with every change of <paramref name="pathAndQuery"/> (a list path, optionally with '?' and a selector).</summary>
    public void Subscribe(string pathAndQuery, Action<InformerChange, Informer> onChange)
    {
        if (_started) throw new InvalidOperationException($"subscribing to {pathAndQuery} after the informers started");
        if (!_informers.TryGetValue(pathAndQuery, out var entry))
        {
            int q = pathAndQuery.IndexOf('?');
            var subscribers = new List<Action<InformerChange, Informer>>();
            Informer? informer = null;
            informer = new Informer(api, q < 0 ? pathAndQuery : pathAndQuery[..q], q < 0 ? null : pathAndQuery[(q + 1)..],
                c => { foreach (var s in subscribers) s(c, informer!); }, log, time);
            _informers[pathAndQuery] = entry = (informer, subscribers);
        }
        entry.Subscribers.Add(onChange);
    }

    /// <summary>Runs every informer until <paramref name="ct"/> fires.</summary>
    public Task RunAsync(CancellationToken ct)
    {
        _started = true;
        return Task.WhenAll(_informers.Values.Select(e => e.Informer.RunAsync(ct)));
    }
}
