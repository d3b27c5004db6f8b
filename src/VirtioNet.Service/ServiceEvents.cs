using System.Text.Json.Nodes;
using System.Threading.Channels;
using VirtioNet.Net;

namespace VirtioNet.Service;

/// <summary>
/// The events of one running instance, handed to every <c>monitor</c> client: the device's own events (read from its
/// event channel on a task of this hub's) and the changes the service makes on the device (<see cref="DeviceLink.Changed"/>).
/// Each client has its own bounded queue: a client that does not read loses its oldest events (counted in its next
/// line), never delays the device or the other clients.
/// </summary>
internal sealed class ServiceEvents : IDisposable
{
    // Events one client may have waiting before its oldest are dropped.
    private const int ClientQueue = 1024;

    private readonly DeviceLink _link;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private readonly Lock _lock = new();
    private Subscription[] _clients = [];

    public ServiceEvents(DeviceLink link)
    {
        _link = link;
        _link.Changed += OnChanged;
        _reader = Task.Run(ReadDeviceEvents);
    }

    /// <summary>Clients subscribed right now.</summary>
    public int Clients => Volatile.Read(ref _clients).Length;

    /// <summary>Hands <paramref name="e"/> to every subscribed client.</summary>
    public void Publish(ServiceEvent e)
    {
        foreach (Subscription client in Volatile.Read(ref _clients))
        {
            client.Offer(e);
        }
    }

    /// <summary>A new client's stream: a reply naming the instance and its link, then a line per event.</summary>
    public ControlStream Subscribe(string instance)
    {
        var client = new Subscription(this, new JsonObject { ["name"] = instance, ["link"] = _link.IsLinkUp ? "up" : "down" });
        lock (_lock)
        {
            _clients = [.. _clients, client];
        }

        return client;
    }

    /// <summary>An event's line: <c>{"time":"…","event":"link-down","detail":null}</c>.</summary>
    public static JsonObject ToJson(ServiceEvent e) => new()
    {
        ["time"] = e.Time.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        ["event"] = e.Kind,
        ["detail"] = e.Detail,
    };

    /// <summary>The name <c>vnet monitor</c> gives a device event.</summary>
    public static string KindOf(VirtioNetDeviceEventKind kind) => kind switch
    {
        VirtioNetDeviceEventKind.LinkUp => "link-up",
        VirtioNetDeviceEventKind.LinkDown => "link-down",
        VirtioNetDeviceEventKind.AnnounceRequested => "announce",
        VirtioNetDeviceEventKind.ConfigurationChanged => "configuration",
        VirtioNetDeviceEventKind.QueueBroken => "queue-broken",
        VirtioNetDeviceEventKind.Recovered => "recovered",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private void OnChanged(string kind, string detail) => Publish(new ServiceEvent(DateTime.UtcNow, kind, detail));

    private async Task ReadDeviceEvents()
    {
        try
        {
            await foreach (VirtioNetDeviceEvent e in _link.Events.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                Publish(new ServiceEvent(DateTime.UtcNow, KindOf(e.Kind), e.Detail));
            }
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }

    private void Remove(Subscription client)
    {
        lock (_lock)
        {
            _clients = [.. _clients.Where(c => c != client)];
        }
    }

    public void Dispose()
    {
        _link.Changed -= OnChanged;
        _stop.Cancel();
        _reader.Wait(TimeSpan.FromSeconds(5));
        foreach (Subscription client in Volatile.Read(ref _clients))
        {
            client.End();
        }

        _stop.Dispose();
    }

    // One monitor client's queue of events.
    private sealed class Subscription : ControlStream
    {
        private readonly ServiceEvents _hub;
        private readonly Channel<ServiceEvent> _queue;
        private long _dropped;

        public Subscription(ServiceEvents hub, JsonObject reply)
        {
            _hub = hub;
            Reply = reply;
            _queue = Channel.CreateBounded<ServiceEvent>(
                new BoundedChannelOptions(ClientQueue) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true },
                _ => Interlocked.Increment(ref _dropped));
        }

        public override JsonObject Reply { get; }

        public void Offer(ServiceEvent e) => _queue.Writer.TryWrite(e);

        public void End() => _queue.Writer.TryComplete();

        public override async ValueTask<JsonObject?> NextAsync(CancellationToken cancellationToken)
        {
            if (!await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false) || !_queue.Reader.TryRead(out ServiceEvent e))
            {
                return null;
            }

            JsonObject line = ToJson(e);
            long dropped = Interlocked.Exchange(ref _dropped, 0);
            if (dropped > 0)
            {
                line["dropped"] = dropped;
            }

            return line;
        }

        public override void Dispose()
        {
            _hub.Remove(this);
            End();
        }
    }
}
