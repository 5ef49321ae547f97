package kz.crewsafe.sample.android

import android.app.Activity
import android.os.Handler
import android.os.Looper
import android.text.InputType
import kz.crewsafe.CheckInState
import kz.crewsafe.sample.core.CrewSafeController

/**
 * Lone-worker check-in: before going in alone, say when to expect "I'm safe" and where; the
 * server alerts dispatch by itself if it does not arrive in time (even if this phone is off).
 */
class CheckInScreen(activity: Activity, private val c: CrewSafeController) : Screen(activity) {
    private val minutes = activity.field("Minutes until I check in", "20").apply {
        inputType = InputType.TYPE_CLASS_NUMBER
    }
    private val address = activity.field("Address (flat, entrance, floor)")
    private val note = activity.field("Note (optional)")
    private val status = activity.text(sizeSp = 18f)
    private val error = activity.text()
    private val start = activity.button("Start check-in") {
        c.checkIns.startCheckIn(minutes.text.toString().trim().toIntOrNull() ?: 0, address.text.toString(), note.text.toString())
        render()
    }
    private val extend = activity.button("+15 min") { c.checkIns.extend(15); render() }
    private val safe = activity.button("I'm safe") { c.checkIns.checkIn(); render() }
    private val done = activity.button("New check-in") { c.checkIns.dismiss(); render() }
    private val ticker = Handler(Looper.getMainLooper())
    private val tick = object : Runnable {
        override fun run() {
            render() // minutes left
            ticker.postDelayed(this, 15_000)
        }
    }

    override val view = activity.column(
        activity.text("Lone-worker check-in", 22f), minutes, address, note, start, status, error, extend, safe, done,
    )

    override fun attach() {
        c.checkIns.listener = { ui(::render) }
        ticker.post(tick)
    }

    override fun detach() {
        c.checkIns.listener = null
        ticker.removeCallbacks(tick)
    }

    private fun render() {
        val s = c.checkIns.state
        val open = s.checkIn?.state == CheckInState.OPEN
        status.text = c.checkIns.statusText()
        error.text = s.fieldError?.let { "Invalid ${it.field}: ${it.reason}" } ?: s.error ?: ""
        for (v in listOf(minutes, address, note, start)) v.isEnabled = c.checkIns.canStart
        extend.isEnabled = open
        safe.isEnabled = open
        done.isEnabled = s.checkIn?.state == CheckInState.DONE
    }
}
