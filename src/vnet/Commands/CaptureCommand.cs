using System.CommandLine;
using System.Text.Json.Nodes;
using VirtioNet.Service;

namespace VirtioNet.Cli.Commands;

/// <summary>
/// <c>vnet capture NAME -w FILE</c>: the frames of a running instance as the driver saw them (received after the driver
/// validated them, transmitted as queued), written to a pcapng file with the direction and queue of each frame.
/// </summary>
internal static class CaptureCommand
{
    private static readonly Option<string> File = new("--write", "-w") { Description = "The pcapng file to write.", Required = true };
    private static readonly Option<int?> Count = new("--count", "-c") { Description = "Stop after this many frames." };
    private static readonly Option<int?> Queue = new("--queue") { Description = "Only this queue pair's frames." };
    private static readonly Option<string?> Direction = new("--direction") { Description = "Only frames going this way: rx (from the device) or tx (to it)." };

    public static Command Create()
    {
        Direction.AcceptOnlyFromAmong("rx", "tx");
        return InstanceCommandRunner.Create(
            "capture",
            "Capture the frames of a running 'vnet up' instance into a pcapng file (until Ctrl-C or --count).",
            (name, result, cancellationToken) => Execute(name, result.GetValue(File)!, result.GetValue(Count), result.GetValue(Queue), result.GetValue(Direction), cancellationToken),
            File,
            Count,
            Queue,
            Direction);
    }

    private static int Execute(string name, string file, int? count, int? queue, string? direction, CancellationToken cancellationToken)
    {
        InstanceCommandRunner.CheckCount(count);

        var request = new JsonObject { ["command"] = "capture", ["queue"] = queue, ["direction"] = direction };
        using ControlSubscription frames = ControlClient.Subscribe(ControlServer.DefaultDirectory, name, request);
        FileStream stream;
        try
        {
            stream = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServiceException($"cannot write {file}: {e.Message}");
        }

        int pairs = frames.Reply["pairs"]?.GetValue<int>() ?? 1;
        long dropped = 0;
        using (var writer = new PcapNgWriter(stream, name, pairs))
        {
            Log.Info($"capturing {name} into {file} (Ctrl-C to stop)");
            while (count is null || writer.Packets < count)
            {
                JsonObject? frame = frames.Read(cancellationToken);
                if (frame is null)
                {
                    break;
                }

                CaptureDirection way = frame["direction"]?.ToString() == "tx" ? CaptureDirection.Transmitted : CaptureDirection.Received;
                writer.Write(frame["queue"]!.GetValue<int>(), way, frame["time"]!.GetValue<long>(), Convert.FromBase64String(frame["data"]!.ToString()));
                writer.Flush();
                dropped = frame["dropped"]?.GetValue<long>() ?? dropped;
            }

            Log.Info($"{writer.Packets} frame(s) written to {file}; {dropped} dropped by the service (the capture fell behind), none of the traffic");
        }

        return 0;
    }
}
