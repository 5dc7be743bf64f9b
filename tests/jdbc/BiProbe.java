// A BI client in miniature, run by tests/test_jdbc_tls.py with Debian's pgjdbc:
// what Tableau, Power BI (through JDBC tools) and DBeaver do when they connect.
//
//   java -cp /usr/share/java/postgresql.jar:. BiProbe URL USER PASSWORD < script
//
// The script (stdin) holds blocks, each opened by a comment line:
//   -- query: NAME      the SQL that follows is run; each row is printed
//   -- refuse: NAME     the SQL that follows must fail; its SQLSTATE is printed
// Output, one tab-separated record per line:
//   SSL     true|false                     this session is encrypted (pg_stat_ssl)
//   TABLE   schema name type remarks       DatabaseMetaData.getTables(null, null, "%", {TABLE, VIEW})
//   COLUMN  schema table column type remarks   getColumns(null, "bi", "%", "%")
//   ROW     NAME value...                  a query's row (NULL as \N)
//   REFUSED NAME SQLSTATE | ALLOWED NAME   a statement that must fail
//   LO      SQLSTATE | ALLOWED             LargeObjectManager.createLO() (the fastpath API)
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.largeobject.LargeObjectManager;

public class BiProbe {
    private static String clean(String value) {
        return value == null ? "\\N" : value.replace('\t', ' ').replace('\n', ' ');
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "bi-probe");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
                rs.next();
                System.out.println("SSL\t" + rs.getBoolean(1));
            }
            DatabaseMetaData meta = conn.getMetaData();
            try (ResultSet rs = meta.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    System.out.println(String.join("\t", "TABLE", clean(rs.getString("TABLE_SCHEM")),
                        clean(rs.getString("TABLE_NAME")), clean(rs.getString("TABLE_TYPE")),
                        clean(rs.getString("REMARKS"))));
                }
            }
            try (ResultSet rs = meta.getColumns(null, "bi", "%", "%")) {
                while (rs.next()) {
                    System.out.println(String.join("\t", "COLUMN", clean(rs.getString("TABLE_SCHEM")),
                        clean(rs.getString("TABLE_NAME")), clean(rs.getString("COLUMN_NAME")),
                        clean(rs.getString("TYPE_NAME")), clean(rs.getString("REMARKS"))));
                }
            }
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            List<String[]> blocks = new ArrayList<>();
            String kind = null, name = null;
            StringBuilder text = new StringBuilder();
            for (String line; (line = in.readLine()) != null; ) {
                if (line.startsWith("-- query: ") || line.startsWith("-- refuse: ")) {
                    if (kind != null) blocks.add(new String[] {kind, name, text.toString()});
                    kind = line.substring(3, line.indexOf(':'));
                    name = line.substring(line.indexOf(':') + 1).trim();
                    text.setLength(0);
                } else {
                    text.append(line).append('\n');
                }
            }
            if (kind != null) blocks.add(new String[] {kind, name, text.toString()});
            for (String[] block : blocks) {
                String sql = block[2].trim();
                if (sql.endsWith(";")) sql = sql.substring(0, sql.length() - 1);
                if (block[0].equals("query")) {
                    try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
                        int n = rs.getMetaData().getColumnCount();
                        while (rs.next()) {
                            StringBuilder row = new StringBuilder("ROW\t").append(block[1]);
                            for (int i = 1; i <= n; i++) row.append('\t').append(clean(rs.getString(i)));
                            System.out.println(row);
                        }
                    }
                } else {
                    try (Statement st = conn.createStatement()) {
                        // Session settings are no guard: switch read-only off first.
                        st.execute("SET default_transaction_read_only = off");
                        st.execute(sql);
                        System.out.println("ALLOWED\t" + block[1]);
                    } catch (SQLException e) {
                        System.out.println("REFUSED\t" + block[1] + "\t" + e.getSQLState());
                    }
                }
            }
            conn.setAutoCommit(false);
            try {
                LargeObjectManager lom = conn.unwrap(PGConnection.class).getLargeObjectAPI();
                lom.createLO(LargeObjectManager.READWRITE);
                conn.commit();
                System.out.println("LO\tALLOWED");
            } catch (SQLException e) {
                conn.rollback();
                System.out.println("LO\t" + e.getSQLState());
            }
        }
    }
}
