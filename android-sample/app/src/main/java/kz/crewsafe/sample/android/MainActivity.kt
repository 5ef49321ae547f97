package kz.crewsafe.sample.android

import android.Manifest
import android.app.Activity
import android.app.AlertDialog
import android.content.Context
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.FrameLayout
import android.widget.LinearLayout
import android.widget.TextView

/** Four screens behind a row of tabs: SOS, Check-in, Report, Records. Views are built in code. */
class MainActivity : Activity() {
    private val app get() = application as SampleApp
    private lateinit var content: FrameLayout
    private var screen: Screen? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        content = FrameLayout(this)
        val tabs = LinearLayout(this).apply {
            for ((title, make) in listOf<Pair<String, () -> Screen>>(
                "SOS" to { SosScreen(this@MainActivity, app.controller) },
                "Check-in" to { CheckInScreen(this@MainActivity, app.controller) },
                "Report" to { ReportScreen(this@MainActivity, app.controller) },
                "Records" to { RecordsScreen(this@MainActivity, app.controller) },
            )) {
                addView(button(title) { show(make()) }, LinearLayout.LayoutParams(0, -2, 1f))
            }
        }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            addView(content, LinearLayout.LayoutParams(-1, 0, 1f))
            addView(tabs)
        })
        show(SosScreen(this, app.controller))
        app.startupNotice?.let {
            AlertDialog.Builder(this).setMessage(it).setPositiveButton("OK", null).show()
            app.startupNotice = null
        }
        // Optional: with it the SOS carries the last known position.
        requestPermissions(arrayOf(Manifest.permission.ACCESS_FINE_LOCATION, Manifest.permission.ACCESS_COARSE_LOCATION), 1)
    }

    private fun show(next: Screen) {
        screen?.detach()
        content.removeAllViews()
        content.addView(next.view)
        screen = next
        next.attach()
    }

    override fun onPause() {
        screen?.pause()
        super.onPause()
    }

    override fun onDestroy() {
        screen?.detach()
        super.onDestroy()
    }
}

/** One screen: builds its view, listens to its model while attached. */
abstract class Screen(protected val activity: Activity) {
    abstract val view: View
    open fun attach() {}
    open fun detach() {}
    open fun pause() {}

    /** Model listeners are called on library or scheduler threads. */
    protected fun ui(block: () -> Unit) = activity.runOnUiThread(block)
}

// Small view helpers.
fun Context.text(initial: String = "", sizeSp: Float = 16f) = TextView(this).apply { text = initial; textSize = sizeSp }

fun Context.button(title: String, onClick: () -> Unit) = Button(this).apply { text = title; setOnClickListener { onClick() } }

fun Context.field(hint: String, value: String = "", lines: Int = 1) = EditText(this).apply {
    this.hint = hint
    setText(value)
    setSingleLine(lines == 1)
    if (lines > 1) minLines = lines
}

fun Context.column(vararg views: View) = LinearLayout(this).apply {
    orientation = LinearLayout.VERTICAL
    setPadding(32, 32, 32, 32)
    views.forEach { addView(it) }
}
