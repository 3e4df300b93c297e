using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace NodeAgent.Api.Hosting;

/// <summary>
/// The daemons' logging: to the journal with its fields when systemd attached one, else one line
/// per entry on the console. The web host, HTTP client and gRPC layers log below Warning only at
/// higher verbosity, as kube-apiserver and the kubelet do: Kestrel's hosting layer otherwise logs
/// two Information lines per request ("Request starting", "Request finished").
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
    }
}
