using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NodeAgent.Api.Client;
using NodeAgent.Api.Meta;

namespace NodeAgent.ControlPlane.Controllers;

/// <summary>How long a leader's lease lasts, how long it tries to renew before it steps down, how often anyone tries.</summary>
public sealed record LeaderElectionConfig(TimeSpan LeaseDuration, TimeSpan RenewDeadline, TimeSpan RetryPeriod)
{
    /// <summary>
    /// 10 s / 7 s / 2 s: a dead leader is replaced within about 14 s (its lease's duration as a
    /// follower observes it, plus one retry), inside the 15 s the cluster promises. (Upstream's
    /// defaults are 15/10/2, which can take up to ~19 s.)
    /// </summary>
    public static LeaderElectionConfig Default { get; } = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(2));
}

/// <summary>
/// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: a
/// candidate takes the lease when it is free or when its record has not changed for
/// leaseDurationSeconds by the candidate's own clock (so clocks need not agree); the leader renews
/// every retry period and steps down (stopping its work) if it cannot renew within the renew
/// deadline, which is shorter than the lease, so two leaders never overlap. Writes carry the
/// resourceVersion read, so of two candidates only one wins. On shutdown the leader releases the
/// lease (empty holderIdentity) and a follower takes over at its next try.
/// Tests: ControlPlane.IntegrationTests LeaderElectionTests.
/// </summary>
public sealed partial class LeaderElector(ApiClient api, TimeProvider time, ILogger log, string ns, string name, string identity, LeaderElectionConfig config)
{
    private string _observed = "";
    private DateTimeOffset _observedAt;

    public string Identity => identity;

    private string Path => $"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}";

    /// <summary>Campaigns until <paramref name="ct"/> fires; while leading, runs <paramref name="lead"/> with a token cancelled when leadership ends.</summary>
    public async Task RunAsync(Func<CancellationToken, Task> lead, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                while (!await TryAcquireOrRenewAsync(ct).ConfigureAwait(false))
                    await Task.Delay(Jitter(config.RetryPeriod), time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }

            LogLeading(log, name, identity);
            using var term = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var work = Task.Run(() => lead(term.Token), CancellationToken.None);
            var renewed = time.GetUtcNow();
            try
            {
                while (true)
                {
                    await Task.Delay(config.RetryPeriod, time, ct).ConfigureAwait(false);
                    if (await TryAcquireOrRenewAsync(ct).ConfigureAwait(false)) renewed = time.GetUtcNow();
                    else if (time.GetUtcNow() - renewed > config.RenewDeadline)
                    {
                        LogLost(log, name, identity);
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            await term.CancelAsync().ConfigureAwait(false);
            try { await work.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
            if (ct.IsCancellationRequested)
            {
                await ReleaseAsync().ConfigureAwait(false);
                return;
            }
        }
    }

    /// <summary>One attempt: create the lease, renew ours, or take one that is free or expired. False when someone else holds it (or the API failed).</summary>
    private async Task<bool> TryAcquireOrRenewAsync(CancellationToken ct)
    {
        using var call = CancellationTokenSource.CreateLinkedTokenSource(ct);
        call.CancelAfter(config.RenewDeadline);
        var now = time.GetUtcNow();
        try
        {
            JsonObject lease;
            try { lease = await api.GetAsync(Path, call.Token).ConfigureAwait(false); }
            catch (ApiError e) when (e.IsNotFound)
            {
                await api.CreateAsync($"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", new JsonObject
                {
                    ["apiVersion"] = "coordination.k8s.io/v1", ["kind"] = "Lease",
                    ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns },
                    ["spec"] = Spec(identity, now, now, 0),
                }, call.Token).ConfigureAwait(false);
                return true;
            }
            var spec = lease["spec"] as JsonObject ?? new JsonObject();
            string holder = ControllerKit.Str(spec, "holderIdentity");
            string record = holder + "|" + ControllerKit.Str(spec, "renewTime");
            if (record != _observed) { _observed = record; _observedAt = now; }
            long duration = ControllerKit.Long(spec, "leaseDurationSeconds", (long)config.LeaseDuration.TotalSeconds);
            if (holder.Length > 0 && holder != identity && _observedAt + TimeSpan.FromSeconds(duration) > now) return false;

            bool ours = holder == identity;
            var acquired = ours ? ApiTime.TryParse(ControllerKit.Str(spec, "acquireTime")) ?? now : now;
            long transitions = ControllerKit.Long(spec, "leaseTransitions") + (ours ? 0 : 1);
            lease["spec"] = Spec(identity, acquired, now, transitions);
            var written = await api.UpdateAsync(Path, lease, call.Token).ConfigureAwait(false);
            _observed = identity + "|" + ControllerKit.Str(written["spec"], "renewTime");
            _observedAt = now;
            return true;
        }
        catch (ApiError e) when (e.IsConflict || e.Code is 0 or >= 500 or 403 or 429) { return false; }
        catch (HttpRequestException) { return false; }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return false; }
    }

    private JsonObject Spec(string holder, DateTimeOffset acquired, DateTimeOffset renewed, long transitions) => new()
    {
        ["holderIdentity"] = holder, ["leaseDurationSeconds"] = (long)config.LeaseDuration.TotalSeconds,
        ["acquireTime"] = ApiTime.FormatMicro(acquired), ["renewTime"] = ApiTime.FormatMicro(renewed), ["leaseTransitions"] = transitions,
    };

    /// <summary>Gives the lease up at shutdown so a follower need not wait for it to expire.</summary>
    private async Task ReleaseAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            var lease = await api.GetAsync(Path, cts.Token).ConfigureAwait(false);
            if (ControllerKit.Str(lease["spec"], "holderIdentity") != identity) return;
            var now = time.GetUtcNow();
            lease["spec"]!["holderIdentity"] = "";
            lease["spec"]!["leaseDurationSeconds"] = 1;
            lease["spec"]!["renewTime"] = ApiTime.FormatMicro(now);
            await api.UpdateAsync(Path, lease, cts.Token).ConfigureAwait(false);
            LogReleased(log, name, identity);
        }
        catch (ApiError) { }
        catch (HttpRequestException) { }
        catch (OperationCanceledException) { }
    }

    private static TimeSpan Jitter(TimeSpan d) => d * (1 + 0.2 * Random.Shared.NextDouble());

    [LoggerMessage(Level = LogLevel.Information, Message = "became leader of {Lease} as {Identity}")]
    private static partial void LogLeading(ILogger log, string lease, string identity);

    [LoggerMessage(Level = LogLevel.Warning, Message = "lost the lease {Lease} ({Identity}): could not renew in time; stopping its components")]
    private static partial void LogLost(ILogger log, string lease, string identity);

    [LoggerMessage(Level = LogLevel.Information, Message = "released the lease {Lease} ({Identity})")]
    private static partial void LogReleased(ILogger log, string lease, string identity);
}
