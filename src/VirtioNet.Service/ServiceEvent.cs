namespace VirtioNet.Service;

/// <summary>
/// One thing that happened to a running instance, as <c>vnet monitor</c> shows it: the device's events (link, announce,
/// configuration, queue broken, recovered) and the changes the service made on the device (filters, MAC).
/// </summary>
/// <param name="Time">When the service saw it (UTC).</param>
/// <param name="Kind">
/// <c>link-up</c>, <c>link-down</c>, <c>announce</c>, <c>configuration</c>, <c>queue-broken</c>, <c>recovered</c>,
/// <c>filter</c> or <c>mac</c>.
/// </param>
/// <param name="Detail">What changed or why; null when the kind says it all.</param>
internal readonly record struct ServiceEvent(DateTime Time, string Kind, string? Detail);
