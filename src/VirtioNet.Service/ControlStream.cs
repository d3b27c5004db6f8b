using System.Text.Json.Nodes;

namespace VirtioNet.Service;

/// <summary>
/// A streaming reply on the control socket (docs/CONTROL.md): after the request's one reply line, the service sends the
/// lines <see cref="NextAsync"/> gives until it gives null (the stream ended on the service's side) or the client goes
/// away; then the connection is closed and the stream disposed, which ends the subscription behind it.
/// </summary>
internal abstract class ControlStream : IDisposable
{
    /// <summary>The first line's fields (the server adds <c>"ok": true</c> and <c>"stream": true</c>).</summary>
    public abstract JsonObject Reply { get; }

    /// <summary>The next line, waiting for it; null when the stream has ended.</summary>
    public abstract ValueTask<JsonObject?> NextAsync(CancellationToken cancellationToken);

    /// <summary>Ends the subscription: nothing more is gathered for this client.</summary>
    public abstract void Dispose();
}
