using System.Text.Json.Nodes;

namespace VirtioNet.Service;

/// <summary>
/// The control socket's observation commands (docs/CONTROL.md): the streams <c>monitor</c> (events) and <c>capture</c>
/// (frames), and <c>recover</c> (reset the device and set it up again, as a monitor sees).
/// </summary>
internal static class ObserveControl
{
    /// <summary>The stream of a streaming command, or null when <paramref name="command"/> is not one.</summary>
    public static ControlStream? Open(string command, JsonObject request, string instance, DeviceLink link, ServiceEvents events) => command switch
    {
        "monitor" => events.Subscribe(instance),
        "capture" => OpenCapture(request, link),
        _ => null,
    };

    /// <summary><c>recover</c>: resets the device and sets it up again; replies with the recoveries so far.</summary>
    public static JsonObject Recover(DeviceLink link)
    {
        link.Recover();
        return new JsonObject { ["recoveries"] = link.Recoveries };
    }

    // {"command":"capture", "queue": Q (optional), "direction": "rx"|"tx" (optional)}
    private static CaptureSubscription OpenCapture(JsonObject request, DeviceLink link)
    {
        int? queue = null;
        if (request["queue"] is { } q)
        {
            if (q is not JsonValue value || !value.TryGetValue(out int index) || index < 0 || index >= link.Pairs)
            {
                throw new ServiceException($"\"queue\" must be a queue pair index from 0 to {link.Pairs - 1}");
            }

            queue = index;
        }

        CaptureDirection? direction = request["direction"]?.ToString() switch
        {
            null => null,
            "rx" => CaptureDirection.Received,
            "tx" => CaptureDirection.Transmitted,
            string other => throw new ServiceException($"\"direction\" must be \"rx\" or \"tx\", not '{other}'"),
        };
        return link.Capture.Subscribe(link.Pairs, queue, direction);
    }
}
