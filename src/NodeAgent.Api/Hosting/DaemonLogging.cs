using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace NodeAgent.Api.Hosting;

/// <summary>
/// The daemons' logging: to the journal with its fields when systemd attached one, else one line
/// per entry on the console. The web host, HTTP client and gRPC layers log below Warning only at
/// higher verbosity, as kube-apiserver and the kubelet do: Kestrel's hosting layer otherwise logs
/// two Information lines per request ("Request starting", "Request finished"). Its request
/// diagnostics category is off altogether: while it is enabled at any level, the host starts an
/// <see cref="System.Diagnostics.Activity"/> per request, which then flows into every outgoing
/// HTTP and gRPC call made for it (etcd, the CRI) and costs CPU on each one for nothing read.
/// </summary>
public static class DaemonLogging
{
    public static void Use(ILoggingBuilder logging, string identifier, Action<SimpleConsoleFormatterOptions> console)
    {
        logging.ClearProviders();
        if (JournalLoggerProvider.FromEnvironment(identifier) is { } journal) logging.AddProvider(journal);
        else logging.AddSimpleConsole(console);
        foreach (var category in (string[])["Microsoft.AspNetCore", "Microsoft.Hosting", "System.Net.Http", "Grpc"])
            logging.AddFilter(category, LogLevel.Warning);
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
    }
}
