import CrewSafe
import SwiftUI

/// Lone-worker check-in: before going in alone, say when to expect "I'm safe" and where; the
/// server alerts dispatch by itself if it does not arrive in time (even if this phone is off).
struct CheckInView: View {
    @EnvironmentObject private var model: AppModel
    @State private var minutes = 20
    @State private var address = ""
    @State private var note = ""

    var body: some View {
        Form {
            Section("Lone-worker check-in") {
                TimelineView(.periodic(from: .now, by: 15)) { context in
                    // "Check in by 14:35 (25 min left) · Abay ave 12 — dispatch has it"
                    Text(model.checkIn.checkIn.map { checkInStatus($0, now: context.date) } ?? "No check-in running")
                        .font(.title3)
                }
                if let e = model.checkIn.fieldError {
                    Text("Invalid \(e.field): \(e.reason)").foregroundColor(.red)
                } else if let e = model.checkIn.error {
                    Text(e).foregroundColor(.red)
                }
            }
            if model.checkIn.checkIn?.state == .open {
                Section {
                    Button("I'm safe") { model.controller?.checkIns.checkIn() }.font(.title2)
                    Button("+15 min") { model.controller?.checkIns.extend(minutes: 15) }
                }
            } else {
                Section("New check-in") {
                    Stepper("Check in within \(minutes) min", value: $minutes, in: 1...1440, step: 5)
                    TextField("Address (flat, entrance, floor)", text: $address)
                    TextField("Note (optional)", text: $note)
                    Button("Start check-in") {
                        model.controller?.checkIns.startCheckIn(minutes: minutes, address: address, note: note)
                    }
                    if model.checkIn.checkIn?.state == .done {
                        Button("Clear") { model.controller?.checkIns.dismiss() }
                    }
                }
            }
        }
    }
}
