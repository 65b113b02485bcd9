from credhelper.entry import credhelper

credhelper()
