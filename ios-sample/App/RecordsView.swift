import CrewSafe
import SwiftUI

/// Every record with its delivery state, the pending counts, the sync state, and the settings.
struct RecordsView: View {
    @EnvironmentObject private var model: AppModel
    @State private var settings = SettingsStore.load()

    var body: some View {
        NavigationStack {
            List {
                Section("Pending") {
                    let n = model.records.counts
                    Text("SOS \(n.sos) · reports \(n.reports) · wedged \(n.wedged) · drafts \(n.drafts)")
                    Text(syncLine).font(.footnote)
                    Button("Sync now") { model.syncNow() }
                }
                Section("Records") {
                    ForEach(model.records.records.reversed(), id: \.id) { e in
                        Text(e.summary).font(.footnote)
                            .swipeActions {
                                if e.state == .wedged {
                                    // Refused by the server for good: retry after a fix, or discard.
                                    Button("Retry") { try? model.controller?.retryWedged(e.id) }
                                    Button("Discard", role: .destructive) { try? model.controller?.discardWedged(e.id) }
                                }
                            }
                    }
                }
                Section("Settings") {
                    TextField("Server URL", text: $settings.serverUrl).textInputAutocapitalization(.never)
                    TextField("Device id", text: $settings.deviceId).textInputAutocapitalization(.never)
                    SecureField("Device token (from enroll-device)", text: $settings.deviceToken)
                    TextField("Crew id", text: $settings.crewId)
                    TextField("Staff id (optional)", text: $settings.staffId)
                    TextField("Extra root CA, PEM (optional)", text: $settings.extraRootCertsPem, axis: .vertical)
                    Button("Save settings") { model.save(settings) }
                    if let p = model.settingsProblem { Text(p).foregroundColor(.red).font(.footnote) }
                }
            }
            .navigationTitle("Records")
        }
    }

    private var syncLine: String {
        let r = model.records
        let net = r.online ? "Online" : "Offline"
        if r.syncing { return "\(net) · syncing…" }
        if let p = r.problem { return "\(net) · \(p)" }
        if let last = r.lastReport { return "\(net) · last sync: \(last.summary)" }
        return "\(net) · not synced yet"
    }
}
