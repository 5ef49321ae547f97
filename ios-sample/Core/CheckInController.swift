import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

struct CheckInUiState: Equatable {
    /// The running check-in, or the last one closed on this screen; nil: none.
    var checkIn: CheckIn?
    /// A bad minutes value or address, per field.
    var fieldError: FieldError?
    /// Why the last action failed.
    var error: String?
}

/// The lone-worker check-in section: before going in somewhere alone the crew starts a check-in
/// ("expect me back within 20 minutes, Abay ave 12, flat 40"); the server raises an alarm for
/// the dispatcher by itself if "I'm safe" has not arrived by the due time, even if this phone is
/// offline or broken. More time can be asked for (`extend`). Every action is stored and queued
/// in the SOS lane before it returns, even offline.
///
/// While `start`ed it follows record changes, so the delivery states shown stay current.
/// `onChange` is called on the caller's or a library thread; it must not block.
final class CheckInController: @unchecked Sendable {
    var onChange: ((CheckInUiState) -> Void)?

    private let store: CrewStore
    private let crew: () -> CrewIdentity
    private let fixes: FixSource
    private let onQueued: () -> Void
    private let lock = NSRecursiveLock()
    private var current = CheckInUiState()
    private var subscription: Subscription?

    init(store: CrewStore, crew: @escaping () -> CrewIdentity, fixes: FixSource = NoFix(),
         onQueued: @escaping () -> Void = {}) {
        self.store = store
        self.crew = crew
        self.fixes = fixes
        self.onQueued = onQueued
    }

    var state: CheckInUiState { locked { current } }

    /// Follows record changes and shows a check-in still open from before a restart.
    func start() {
        locked {
            if subscription == nil {
                subscription = store.subscribeRecords(listener: CheckInRecordForwarder(self))
            }
            restore()
        }
    }

    func stop() {
        locked {
            subscription?.cancel()
            subscription = nil
        }
    }

    /// Shows the newest open check-in, if there is one and nothing is shown yet.
    func restore() {
        locked {
            guard current.checkIn == nil, let records = try? store.listRecords() else { return }
            for e in records.reversed() where e.kind == .checkInStart {
                if let c = try? store.getCheckIn(checkInId: e.id), c.state == .open {
                    set(CheckInUiState(checkIn: c))
                    return
                }
            }
        }
    }

    /// Whether a new check-in can be started (none is running).
    var canStart: Bool { state.checkIn?.state != .open }

    /// Starts a check-in due in `minutes` (1 to 1440) at `address`. Nil (and an error) if refused.
    @discardableResult
    func startCheckIn(minutes: Int, address: String, note: String? = nil) -> CheckIn? {
        locked {
            guard canStart else {
                current.error = "A check-in is already running: check in or extend it."
                set(current)
                return nil
            }
            let address = address.trimmingCharacters(in: .whitespacesAndNewlines)
            let note = note?.trimmingCharacters(in: .whitespacesAndNewlines)
            return act {
                try store.startCheckIn(crew: crew(), dueInMinutes: Self.minutes(minutes),
                                       address: address.isEmpty ? nil : address,
                                       note: note?.isEmpty == false ? note : nil, location: fixes.lastFix())
            }
        }
    }

    /// Asks for `minutes` more (1 to 1440).
    @discardableResult
    func extend(minutes: Int) -> CheckIn? {
        locked {
            guard let id = openId() else { return nil }
            return act { try store.extendCheckIn(checkInId: id, extendByMinutes: Self.minutes(minutes)) }
        }
    }

    /// "I'm safe": closes the running check-in, with the current position if there is one.
    @discardableResult
    func checkIn() -> CheckIn? {
        locked {
            guard let id = openId() else { return nil }
            return act { try store.checkIn(checkInId: id, location: fixes.lastFix()) }
        }
    }

    /// Clears a closed check-in from the screen.
    func dismiss() {
        locked { if canStart { set(CheckInUiState()) } }
    }

    /// Re-reads the shown check-in (called for every check-in record change).
    func refresh() {
        locked {
            // Unreadable (purged long after delivery): keep what is shown.
            guard let shown = current.checkIn, let fresh = try? store.getCheckIn(checkInId: shown.id),
                  fresh != shown else { return }
            current.checkIn = fresh
            set(current)
        }
    }

    /// The section's text: due time and minutes left, or when the crew checked in; delivery.
    func statusText(now: Date = Date(), timeZone: TimeZone = .current) -> String {
        state.checkIn.map { checkInStatus($0, now: now, timeZone: timeZone) } ?? "No check-in running"
    }

    fileprivate func changed(_ change: RecordChange) {
        switch change.kind {
        case .checkInStart, .checkInExtend, .checkInDone: refresh()
        case .sos, .sosLocation, .sosCancel, .incidentReport: break
        }
    }

    private static func minutes(_ m: Int) -> UInt32 { UInt32(clamping: max(0, m)) }

    private func openId() -> String? {
        guard let c = current.checkIn, c.state == .open else {
            current.error = "No check-in is running."
            set(current)
            return nil
        }
        return c.id
    }

    private func act(_ call: () throws -> CheckIn) -> CheckIn? {
        do {
            let c = try call()
            set(CheckInUiState(checkIn: c))
            onQueued()
            return c
        } catch CrewSafeError.InvalidInput(let field, let reason) {
            current.fieldError = FieldError(field: field, reason: reason)
            current.error = nil
            set(current)
            return nil
        } catch {
            current.fieldError = nil
            current.error = describe(error)
            set(current)
            return nil
        }
    }

    private func set(_ s: CheckInUiState) {
        current = s
        onChange?(s)
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

private final class CheckInRecordForwarder: RecordListener, @unchecked Sendable {
    weak var controller: CheckInController?
    init(_ controller: CheckInController) { self.controller = controller }
    func onRecordChanged(change: RecordChange) throws { controller?.changed(change) }
}

/// "Check in by 14:35 (25 min left) · Abay ave 12 — dispatch has it", "Overdue since 14:35 —
/// dispatch is alerted: tap I'm safe", "Checked in safe at 14:20 — dispatch was told". The due
/// time is the phone's estimate (the server times it from when it received the start).
func checkInStatus(_ c: CheckIn, now: Date = Date(), timeZone: TimeZone = .current) -> String {
    let place = c.address.map { " · \($0)" } ?? ""
    if c.state == .done {
        let told = c.doneSyncState == .delivered ? "dispatch was told" : "telling dispatch…"
        return "Checked in safe at \(hhmm(c.doneAt ?? now, timeZone: timeZone))\(place) — \(told)"
    }
    let delivered = c.syncState == .delivered && c.extensions.allSatisfy { $0.syncState == .delivered }
    let due = hhmm(c.dueAt, timeZone: timeZone)
    let left = c.dueAt.timeIntervalSince(now)
    if left < 0 {
        return "Overdue since \(due)\(place) — \(delivered ? "dispatch is alerted" : "not sent yet"): tap I'm safe"
    }
    let told = delivered ? "dispatch has it" : "not sent yet: it leaves as soon as there is a network"
    return "Check in by \(due) (\(Int((left / 60).rounded(.up))) min left)\(place) — \(told)"
}
