import SwiftUI

@main
struct CrewSafeSampleApp: App {
    @StateObject private var model = AppModel.shared
    @Environment(\.scenePhase) private var scenePhase

    init() {
        BackgroundSync.register { AppModel.shared.controller }
    }

    var body: some Scene {
        WindowGroup {
            TabView {
                SosView().tabItem { Label("SOS", systemImage: "exclamationmark.triangle.fill") }
                CheckInView().tabItem { Label("Check-in", systemImage: "timer") }
                ReportView().tabItem { Label("Report", systemImage: "doc.text") }
                RecordsView().tabItem { Label("Records", systemImage: "tray.full") }
            }
            .environmentObject(model)
            .alert(model.notice ?? "", isPresented: Binding(get: { model.notice != nil }, set: { if !$0 { model.notice = nil } })) {
                Button("OK", role: .cancel) {}
            }
        }
        .onChange(of: scenePhase) { phase in
            if phase == .background {
                model.editor?.saveNow()
                BackgroundSync.submit()
            }
        }
    }
}
