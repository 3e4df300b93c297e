using System.Text;

namespace NodeAgent.Logs;

/// <summary>
/// Reads the end of a CRI-format log file ("&lt;RFC3339Nano&gt; &lt;stream&gt; &lt;P|F&gt; &lt;content&gt;" per line) and
/// returns the content only, as FallbackToLogsOnError wants it.
/// </summary>
public static class CriLogTail
{
    public static string? Read(string path, int maxLines, int maxBytes)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long start = Math.Max(0, f.Length - maxBytes * 4L);
            f.Seek(start, SeekOrigin.Begin);
            using var reader = new StreamReader(f, Encoding.UTF8);
            var lines = new List<string>();
            if (start > 0) reader.ReadLine(); // partial line
            while (reader.ReadLine() is { } line)
            {
                var parts = line.Split(' ', 4);
                lines.Add(parts.Length == 4 ? parts[3] : line);
            }
            var tail = string.Join('\n', lines.TakeLast(maxLines));
            return tail.Length > maxBytes ? tail[^maxBytes..] : tail;
        }
        catch (IOException) { return null; }
    }
}
